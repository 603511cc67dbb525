//! BAM: `coverage::coverage_from_bam` (noodles underneath; the lowest BAM reader chromax
//! exposes) in both pile-up modes over a small fixed genome, and `coverage::bam_header_sizes`.
//!
//! A BAM is BGZF-compressed, and mutating deflate streams mostly breaks their checksums, so
//! an input that does not start with the gzip magic is taken as the uncompressed BAM stream
//! (`BAM\1`, header, records) and compressed here; one that does is written as it is.
#![no_main]

use chromax::coverage::{bam_header_sizes, coverage_from_bam, CoverageOptions, PileupMode};
use chromax::io::ChromSizes;
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::sync::OnceLock;

/// The reads' genome: the two chromosomes the seeds use, short.
fn genome() -> &'static ChromSizes {
    static SIZES: OnceLock<ChromSizes> = OnceLock::new();
    SIZES.get_or_init(|| {
        ChromSizes::from_pairs(chromax_fuzz::bam::GENOME.map(|(n, l)| (n.to_string(), l))).expect("sizes")
    })
}

fuzz_target!(|data: &[u8]| {
    let bytes = if data.starts_with(&[0x1f, 0x8b]) {
        data.to_vec()
    } else {
        let mut w = noodles::bgzf::io::Writer::new(Vec::new());
        w.write_all(data).expect("compressing into memory");
        w.finish().expect("compressing into memory")
    };
    let path = chromax_fuzz::write_input("bam", "reads.bam", &bytes);
    let _ = bam_header_sizes(&path);
    for mode in [PileupMode::CutSites, PileupMode::Fragments] {
        let opts = CoverageOptions { mode, extend: 10, min_mapq: 0, ..Default::default() };
        let _ = coverage_from_bam(&path, Some(genome()), &opts, &mut |_| {});
    }
});
