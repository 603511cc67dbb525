//! bigWig: `io::bigwig::read_bigwig` (bigtools underneath), over the file's own chromosomes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = chromax_fuzz::write_input("bigwig", "track.bw", data);
    let _ = chromax::io::bigwig::read_bigwig(&path, None);
});
