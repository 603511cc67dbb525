//! FASTA (plain or gzip): `store::bases::read_fasta`. chromax reads no `.fai`: it reads the
//! whole FASTA.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = chromax_fuzz::write_input("fasta", "genome.fa", data);
    let _ = chromax::store::bases::read_fasta(&path);
});
