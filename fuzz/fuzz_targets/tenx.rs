//! 10x Genomics HDF5 matrices: `io::tenx::is_10x_h5` and `read_10x_h5`.
#![no_main]

use chromax::io::tenx::{is_10x_h5, read_10x_h5};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = chromax_fuzz::write_input("tenx", "filtered_peak_bc_matrix.h5", data);
    let _ = is_10x_h5(&path);
    let _ = read_10x_h5(&path);
});
