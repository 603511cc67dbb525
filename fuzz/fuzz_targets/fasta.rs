//! FASTA (plain or gzip): `store::bases::read_fasta`. chromax reads no `.fai`: it reads the
//! whole FASTA.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::fasta(data));
