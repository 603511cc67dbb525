//! bedGraph (plain or gzip): `io::bedgraph::read_bedgraph`, over its own chromosomes and over
//! a small fixed genome.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::bedgraph(data));
