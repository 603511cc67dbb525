//! AnnData files: `io::h5ad::read_h5ad_counts`, `read_h5ad_x` and `read_h5ad_obsm`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::h5ad(data));
