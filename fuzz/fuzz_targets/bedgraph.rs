//! bedGraph (plain or gzip): `io::bedgraph::read_bedgraph`, over its own chromosomes and over
//! a small fixed genome.
#![no_main]

use chromax::io::bedgraph::read_bedgraph;
use chromax::io::ChromSizes;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn genome() -> &'static ChromSizes {
    static SIZES: OnceLock<ChromSizes> = OnceLock::new();
    SIZES.get_or_init(|| {
        ChromSizes::from_pairs([("chrI".to_string(), 230_218), ("chrII".to_string(), 20_000)]).expect("sizes")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = chromax_fuzz::write_input("bedgraph", "track.bedGraph", data);
    let _ = read_bedgraph(&path, None);
    let _ = read_bedgraph(&path, Some(genome()));
});
