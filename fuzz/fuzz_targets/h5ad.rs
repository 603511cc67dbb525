//! AnnData files: `io::h5ad::read_h5ad_counts`, `read_h5ad_x` and `read_h5ad_obsm`.
#![no_main]

use chromax::io::h5ad::{read_h5ad_counts, read_h5ad_obsm, read_h5ad_x};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = chromax_fuzz::write_input("h5ad", "matrix.h5ad", data);
    let _ = read_h5ad_counts(&path);
    let _ = read_h5ad_x(&path);
    let _ = read_h5ad_obsm(&path, "X_embed");
});
